"use strict";
const { SecretsManager } = require("@aws-sdk/client-secrets-manager");
const { ElastiCache } = require("@aws-sdk/client-elasticache");
const tls = require("node:tls");
const sm = new SecretsManager({}), ec = new ElastiCache({});
const env = process.env, group = env.REPLICATION_GROUP_ID;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function available() {
  for (;;) {
    const out = await ec.describeReplicationGroups({ ReplicationGroupId: group });
    if (out.ReplicationGroups[0].Status === "available") return;
    await sleep(+env.POLL_MS || 15000);
  }
}

async function modify(token, strategy) {
  await available();
  await ec.modifyReplicationGroup({ ReplicationGroupId: group, AuthToken: token, AuthTokenUpdateStrategy: strategy, ApplyImmediately: true });
  await available();
}

function auth(token) {
  return new Promise((ok, fail) => {
    const c = tls.connect({ host: env.REDIS_HOST, port: +env.REDIS_PORT, servername: env.REDIS_HOST, timeout: 5000 }, () => c.write("AUTH " + token + "\r\n"));
    c.once("data", (d) => { c.end(); String(d).startsWith("+OK") ? ok() : fail(new Error("Redis refused a token")); });
    c.once("timeout", () => { c.destroy(); fail(new Error("Redis did not answer")); });
    c.once("error", fail);
  });
}

exports.handler = async ({ SecretId: id, ClientRequestToken: token, Step: step }) => {
  const meta = await sm.describeSecret({ SecretId: id });
  const versions = meta.VersionIdsToStages || {};
  if (!meta.RotationEnabled) throw new Error("rotation is not enabled");
  if (!versions[token]) throw new Error("no version " + token);
  if (versions[token].includes("AWSCURRENT")) return;
  if (!versions[token].includes("AWSPENDING")) throw new Error("version " + token + " is not pending");
  const get = async (stage, version) => (await sm.getSecretValue({ SecretId: id, VersionStage: stage, VersionId: version })).SecretString;
  const current = Object.keys(versions).find((v) => versions[v].includes("AWSCURRENT"));
  switch (step) {
    case "createSecret":
      try {
        await get("AWSPENDING", token);
      } catch (e) {
        if (e.name !== "ResourceNotFoundException") throw e;
        const { RandomPassword } = await sm.getRandomPassword({ PasswordLength: 48, ExcludePunctuation: true });
        await sm.putSecretValue({ SecretId: id, ClientRequestToken: token, SecretString: RandomPassword, VersionStages: ["AWSPENDING"] });
      }
      return;
    case "setSecret":
      if (Object.values(versions).some((s) => s.includes("AWSPREVIOUS"))) await modify(await get("AWSCURRENT"), "SET");
      await modify(await get("AWSPENDING", token), "ROTATE");
      return;
    case "testSecret":
      await auth(await get("AWSPENDING", token));
      await auth(await get("AWSCURRENT"));
      return;
    case "finishSecret":
      await sm.updateSecretVersionStage({ SecretId: id, VersionStage: "AWSCURRENT", MoveToVersionId: token, RemoveFromVersionId: current });
      return;
    default:
      throw new Error("unknown step " + step);
  }
};
