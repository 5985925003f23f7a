/**
 * Docker: the fourteen docker_* commands, which drive the Docker Engine on
 * this server through its REST API. Each loads the Engine client on first use.
 */
import type { CommandModule } from "../../lib/core/mod.ts";
import createContainer from "./create_container.ts";
import deleteContainer from "./delete_container.ts";
import deleteImage from "./delete_image.ts";
import getContainerDetails from "./get_container_details.ts";
import getLogs from "./get_logs.ts";
import host from "./host.ts";
import importImage from "./import_image.ts";
import listContainers from "./list_containers.ts";
import listImages from "./list_images.ts";
import pullRepo from "./pull_repo.ts";
import restartContainer from "./restart_container.ts";
import startContainer from "./start_container.ts";
import stopContainer from "./stop_container.ts";
import topContainer from "./top_container.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  createContainer,
  deleteContainer,
  deleteImage,
  getContainerDetails,
  getLogs,
  host,
  importImage,
  listContainers,
  listImages,
  pullRepo,
  restartContainer,
  startContainer,
  stopContainer,
  topContainer,
];
