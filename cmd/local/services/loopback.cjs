// loopback.cjs: preloaded with `node -r` in front of a server that binds every interface
// (fauxqs 2.4 calls listen({host: "0.0.0.0"}) whatever FAUXQS_HOST says, and has no option
// for it). It makes every listening TCP socket in the process bind 127.0.0.1 instead, so
// nothing off this machine can reach it; a Unix socket path is left alone.
"use strict";
const net = require("node:net");

const LOOPBACK = "127.0.0.1";
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    // listen(options[, cb]): a TCP listen has a port (or none, for any port), not a path
    if (first.path === undefined && first.handle === undefined && first.fd === undefined) {
      args[0] = { ...first, host: LOOPBACK };
    }
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb])
    if (typeof args[1] === "string") {
      args[1] = LOOPBACK;
    } else {
      args.splice(1, 0, LOOPBACK);
    }
  } else if (first === undefined || typeof first === "function") {
    // listen([cb]): any port on every interface
    args.unshift(0, LOOPBACK);
  }
  return listen.apply(this, args);
};
