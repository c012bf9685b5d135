/**
 * Runs downloadFile in its own process so a test can kill it with SIGKILL mid-file.
 * Usage: node --import tsx download-child.ts '<DownloadFileOptions as JSON>'
 */
import { downloadFile, type DownloadFileOptions } from '../../src/download/engine.js';

const options = JSON.parse(process.argv[2] ?? '{}') as DownloadFileOptions;
const result = await downloadFile(options);
process.stdout.write(`${JSON.stringify(result)}\n`);
