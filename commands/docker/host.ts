/** `docker_host`: says that this agent has the docker commands. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_host",
  description: "Answers true: this agent can run the docker commands.",
  args: {},
  readOnly: true,
  run() {
    return Promise.resolve(makeReply(0, { reply_type: "boolean", reply_object: true }));
  },
});
