/** `docker_start_container`: starts a created or stopped container. */
import { defineCommand } from "../../lib/core/mod.ts";
import { ArgumentError, makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_start_container",
  description: "Starts a container, optionally with host settings (older engines only).",
  args: {
    container: { type: "str", required: true, help: "The container id or name." },
    port_bindings: {
      type: "dict",
      help: "Container port -> list of [host_ip, host_port] pairs.",
    },
    lxc_conf: { type: "list", help: "LXC settings; no Docker Engine since 1.10 has them." },
    links: { type: "dict", help: "Container name -> alias." },
    privileged: { type: "bool", default: false, help: "Give the container all privileges." },
    publish_all_ports: {
      type: "bool",
      default: false,
      help: "Publish every exposed port on a random host port.",
    },
    cap_add: { type: "list", help: "Capabilities to add." },
    cap_drop: { type: "list", help: "Capabilities to drop." },
  },
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const id = v.containerRef(args.container);
    if (args.lxc_conf && args.lxc_conf.length > 0) {
      throw new ArgumentError(
        "argument 'lxc_conf' is not supported: Docker Engine has had no LXC driver since 1.10",
      );
    }
    const host: Record<string, unknown> = {};
    if (args.port_bindings && Object.keys(args.port_bindings).length > 0) {
      host.PortBindings = v.portBindings(args.port_bindings);
    }
    if (args.links && Object.keys(args.links).length > 0) host.Links = v.linkLines(args.links);
    if (args.privileged) host.Privileged = true;
    if (args.publish_all_ports) host.PublishAllPorts = true;
    if (args.cap_add?.length) host.CapAdd = v.capabilities(args.cap_add, "cap_add");
    if (args.cap_drop?.length) host.CapDrop = v.capabilities(args.cap_drop, "cap_drop");
    const docker = await v.engine(ctx);
    await docker.startContainer(id, Object.keys(host).length > 0 ? host : undefined);
    return makeReply(0);
  },
});
