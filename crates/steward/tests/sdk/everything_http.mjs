// Runs @modelcontextprotocol/server-everything's streamable-HTTP transport
// (the entry point in $EVERYTHING_ENTRY) on 127.0.0.1 only: its express app
// would listen on every interface. The port is $EVERYTHING_PORT, else the
// one the OS picks; once bound, "listening on 127.0.0.1:PORT" is printed on
// stdout for the test.
import net from "node:net";
import { pathToFileURL } from "node:url";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  this.once("listening", () => console.log(`listening on 127.0.0.1:${this.address().port}`));
  const port = Number(process.env.EVERYTHING_PORT || 0);
  return listen.call(this, { port, host: "127.0.0.1" }, callback);
};
process.argv.splice(2, process.argv.length - 2, "streamableHttp");
await import(pathToFileURL(process.env.EVERYTHING_ENTRY).href);
