/** `docker_restart_container`: restarts a container, killing it after `timeout` seconds. */
import { stopCommand } from "./stop_command.ts";

export default stopCommand(
  "restart",
  "Restarts a container (SIGTERM, then SIGKILL after timeout seconds).",
);
