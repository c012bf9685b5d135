import { TransientError } from '../lib/errors.js';

/** The mirror could not be asked (network, credentials, a 5xx): provisioning goes on from the origin. */
export class MirrorUnavailable extends TransientError {}
