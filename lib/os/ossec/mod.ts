/**
 * Reading OSSEC and Wazuh intrusion-detection alerts: the three file formats
 * and a follower that survives restarts and log rotation. Loaded only when
 * `[intrusion_detection] ossec` is on.
 */
export * from "./alert.ts";
export * from "./follower.ts";
export * from "./formats.ts";
