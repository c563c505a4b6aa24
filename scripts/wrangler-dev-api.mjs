// `wrangler dev` without its inspector, for `scripts/edge-dev.sh start NAME PORT --no-inspector`.
//
// The wrangler CLI always starts the runtime's inspector: its InspectorProxyWorker enables the
// runtime's Network domain, so every `fetch` a Worker makes (each publish of a miss) yields inspector
// events that workerd serialises and wrangler's node process relays and appends to its debug log. A
// deployed Worker has none of that. Only wrangler's API takes `dev.inspector: false`, so this starts
// the same Worker through it (`unstable_startWorker`, the API behind the CLI), with the subset of the
// CLI's flags that edge-dev.sh passes: --ip, --port, --persist-to, --config, --name, --log-level and
// --var KEY:VALUE (repeated). Any other flag is an error. Stops on SIGTERM or SIGINT. It joins the same
// dev registry as the CLI, so that service and Durable Object bindings reach Workers of either.
import { statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { unstable_startWorker } from "wrangler";

/// The CLI's dev registry (wrangler's getRegistryPath, which its API does not apply by itself).
function registryPath() {
  if (process.env.WRANGLER_REGISTRY_PATH) return process.env.WRANGLER_REGISTRY_PATH;
  const legacy = join(homedir(), ".wrangler");
  const isDirectory = (path) => statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  const config = join(process.env.XDG_CONFIG_HOME || join(homedir(), ".config"), ".wrangler");
  return join(isDirectory(legacy) ? legacy : config, "registry");
}

const flags = { config: "wrangler.toml", vars: {} };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]];
  if (value === undefined) throw new Error(`${flag} needs a value`);
  switch (flag) {
    case "--ip": flags.ip = value; break;
    case "--port": flags.port = Number(value); break;
    case "--persist-to": flags.persist = value; break;
    case "--config": flags.config = value; break;
    case "--name": flags.name = value; break;
    case "--log-level": flags.logLevel = value; break;
    case "--var": {
      const colon = value.indexOf(":");
      if (colon < 1) throw new Error(`--var ${value}: expected KEY:VALUE`);
      flags.vars[value.slice(0, colon)] = { type: "plain_text", value: value.slice(colon + 1) };
      break;
    }
    default: throw new Error(`${flag} is not a flag this launcher knows (see its header)`);
  }
}

const worker = await unstable_startWorker({
  config: resolve(flags.config),
  ...(flags.name ? { name: flags.name } : {}),
  bindings: flags.vars,
  dev: {
    inspector: false,
    server: { hostname: flags.ip ?? "127.0.0.1", port: flags.port },
    ...(flags.persist ? { persist: flags.persist } : {}),
    logLevel: flags.logLevel ?? "log",
    watch: false,
    registry: registryPath(),
  },
});
await worker.ready;
console.log(`[wrangler-dev-api] ready on ${await worker.url} (no inspector)`);
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    await worker.dispose();
    process.exit(0);
  });
}
