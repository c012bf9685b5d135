import type { Cluster, Redis } from 'ioredis';

/** A connection to the pod's Redis: one server (socket or URL) or a Redis Cluster. BullMQ takes either. */
export type RedisClient = Redis | Cluster;
