// Runs the Redis rotation function (rotation/redis.js, copied beside this file as index.js)
// against stand-ins for Secrets Manager and ElastiCache, and a real TLS endpoint that answers
// AUTH like Redis (rotation_test.go serves it). The scenario (argv[2], JSON) is the secret's
// versions, the tokens the group accepts and the steps to run; it prints what happened.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const Module = require("node:module");

const scenario = JSON.parse(process.argv[2]);
const versions = scenario.versions; // id -> {stages, value}
let accepted = scenario.accepted; // tokens the group accepts
let modifying = 0; // describe calls still answering "modifying"
let random = 0;
const calls = [];
const writeTokens = () => fs.writeFileSync(process.env.TOKENS_FILE, accepted.join("\n"));
writeTokens();

class SecretsManager {
  async describeSecret() {
    const v = {};
    for (const [id, x] of Object.entries(versions)) v[id] = [...x.stages];
    return { RotationEnabled: true, VersionIdsToStages: v };
  }
  async getSecretValue({ VersionStage, VersionId }) {
    // A version RotateSecret made for this rotation has its label but no value until createSecret.
    const hit = Object.entries(versions).find(([id, x]) => (!VersionId || id === VersionId) && x.stages.includes(VersionStage) && x.value !== undefined);
    if (!hit) throw Object.assign(new Error("no such version"), { name: "ResourceNotFoundException" });
    return { SecretString: hit[1].value };
  }
  async getRandomPassword({ PasswordLength, ExcludePunctuation }) {
    calls.push(`sm.getRandomPassword ${PasswordLength} ${ExcludePunctuation}`);
    return { RandomPassword: "new-token-" + ++random };
  }
  async putSecretValue({ ClientRequestToken, SecretString, VersionStages }) {
    calls.push(`sm.putSecretValue ${ClientRequestToken} ${VersionStages}`);
    if (versions[ClientRequestToken].value !== undefined) throw new Error("the version already has a value");
    versions[ClientRequestToken] = { stages: [...VersionStages], value: SecretString };
  }
  async updateSecretVersionStage({ VersionStage, MoveToVersionId, RemoveFromVersionId }) {
    calls.push(`sm.updateSecretVersionStage ${VersionStage} ${MoveToVersionId} ${RemoveFromVersionId}`);
    // As Secrets Manager does: the old current becomes AWSPREVIOUS, the new one loses AWSPENDING.
    for (const x of Object.values(versions)) x.stages = x.stages.filter((s) => s !== "AWSPREVIOUS");
    versions[RemoveFromVersionId].stages = ["AWSPREVIOUS"];
    versions[MoveToVersionId].stages = ["AWSCURRENT"];
  }
}

class ElastiCache {
  async describeReplicationGroups({ ReplicationGroupId }) {
    const status = modifying > 0 ? "modifying" : "available";
    if (modifying > 0) modifying--;
    return { ReplicationGroups: [{ ReplicationGroupId, Status: status }] };
  }
  async modifyReplicationGroup({ ReplicationGroupId, AuthToken, AuthTokenUpdateStrategy, ApplyImmediately }) {
    if (modifying > 0) throw new Error("InvalidReplicationGroupState: the group is modifying");
    calls.push(`ec.modifyReplicationGroup ${ReplicationGroupId} ${AuthTokenUpdateStrategy} ${AuthToken} ${ApplyImmediately}`);
    // ElastiCache: ROTATE keeps the latest token and adds the new one; SET keeps only the new one.
    accepted = AuthTokenUpdateStrategy === "ROTATE" ? [accepted[accepted.length - 1], AuthToken] : [AuthToken];
    if (scenario.ignoreModify) accepted = scenario.accepted;
    writeTokens();
    modifying = 2;
  }
}

const stubs = {
  "@aws-sdk/client-secrets-manager": { SecretsManager },
  "@aws-sdk/client-elasticache": { ElastiCache },
};
const load = Module._load;
Module._load = function (request, ...rest) {
  return stubs[request] || load.call(this, request, ...rest);
};
const { handler } = require(path.join(__dirname, "index.js"));

(async () => {
  const results = [];
  for (const { step, token } of scenario.steps) {
    try {
      await handler({ SecretId: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lastunit/redis-auth", ClientRequestToken: token, Step: step });
      results.push(null);
    } catch (e) {
      results.push(e.message);
    }
  }
  process.stdout.write(JSON.stringify({ results, calls, versions, accepted }));
})();
