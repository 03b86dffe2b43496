// Preloaded (`node --import`) into an MCP server under test whose HTTP
// server would listen on every interface: each listen goes to 127.0.0.1
// instead, on the port asked for.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  const port = typeof args[0] === "object" && args[0] !== null ? args[0].port : args[0];
  return listen.call(this, { port: Number(port ?? 0), host: "127.0.0.1" }, callback);
};
