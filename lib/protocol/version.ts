/** The agent's version, reported in the handshake and by `--version`. */
export const VERSION = "2.0.0";
