/** `docker_create_container`: creates (does not start) a container from an image. */
import { defineCommand } from "../../lib/core/mod.ts";
import { ArgumentError, makeReply } from "../../lib/protocol/mod.ts";

/** The handshake feature the original's docker extension reported. */
const DOCKER_FEATURE_VERSION = "1.1.2";

/** Memory limits: 0 (none) up to 1 PiB. */
const MAX_BYTES = 2 ** 50;

export default defineCommand({
  name: "docker_create_container",
  description: "Creates a container from an image (not started); answers the Engine's Id.",
  args: {
    image: { type: "str", required: true, help: "The image, e.g. busybox:latest." },
    command: {
      type: "any",
      help: "The command: a string is split into words like a shell would, a list is used as is.",
    },
    hostname: { type: "str", help: "The container's host name." },
    user: { type: "str", help: "The user (name or uid[:gid]) the command runs as." },
    mem_limit: { type: "int", default: 0, help: "Memory limit in bytes; 0 means none." },
    ports: { type: "list", help: 'Ports to expose: 80, "80/tcp", "53/udp".' },
    environment: { type: "dict", help: "Environment variables, name -> value." },
    memswap_limit: {
      type: "int",
      default: 0,
      help: "Memory plus swap limit in bytes; 0 means the default, -1 unlimited swap.",
    },
    name: { type: "str", help: "The container's name." },
  },
  features: () => ({ docker: DOCKER_FEATURE_VERSION }),
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const image = v.imageRef(args.image, "image");
    const name = args.name ? v.containerRef(args.name, "name") : undefined;
    const body: Record<string, unknown> = {
      Image: image,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      OpenStdin: false,
      StdinOnce: false,
      Tty: false,
      NetworkDisabled: false,
      HostConfig: {
        Memory: v.bounded(args.mem_limit, "mem_limit", 0, MAX_BYTES),
        MemorySwap: v.bounded(args.memswap_limit, "memswap_limit", -1, MAX_BYTES),
      },
    };
    if (args.command !== null && args.command !== undefined) body.Cmd = commandWords(args.command);
    if (args.hostname) {
      if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(args.hostname)) {
        throw new ArgumentError(
          `argument 'hostname' ${JSON.stringify(args.hostname)} is not a host name`,
        );
      }
      body.Hostname = args.hostname;
    }
    if (args.user) {
      if (!/^[A-Za-z0-9_.][A-Za-z0-9_.:-]{0,63}$/.test(args.user)) {
        throw new ArgumentError(
          `argument 'user' ${JSON.stringify(args.user)} is not a user name or uid[:gid]`,
        );
      }
      body.User = args.user;
    }
    if (args.ports) body.ExposedPorts = v.exposedPorts(args.ports);
    if (args.environment) body.Env = v.envLines(args.environment);
    const docker = await v.engine(ctx);
    const created = await docker.createContainer(body, name);
    return makeReply(0, { reply_type: "docker_create_container", reply_object: created });

    function commandWords(command: unknown): string[] {
      if (typeof command === "string") return v.shellWords(command);
      if (
        Array.isArray(command) &&
        command.every((w) => typeof w === "string" || typeof w === "number")
      ) {
        return command.map(String);
      }
      throw new ArgumentError("argument 'command' must be a string or a list of strings");
    }
  },
});
