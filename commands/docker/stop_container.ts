/** `docker_stop_container`: stops a container, killing it after `timeout` seconds. */
import { stopCommand } from "./stop_command.ts";

export default stopCommand(
  "stop",
  "Stops a container (SIGTERM, then SIGKILL after timeout seconds).",
);
