/** `redis:` section: a single Redis or a Redis Cluster, with errors that name the fix. */
import { expect } from "chai";

import { redisSection } from "../../../relayer/config/sections/redis.js";

function issues(input: unknown): string[] {
  const result = redisSection().safeParse(input);
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

describe("redis config section", function () {
  it("is a single Redis by default", function () {
    expect(redisSection().parse(undefined)).to.include({ url: "redis://127.0.0.1:6379", cluster: null, shards: 256, prefix: "agentgpt" });
  });

  it("reads a cluster from redis.cluster or from a redis+cluster:// URL (credentials and IPv6 included)", function () {
    expect(redisSection().parse({ cluster: ["10.0.0.1:7000", "redis-b.internal:7001"], shards: 1024 })).to.deep.include({
      cluster: [
        { host: "10.0.0.1", port: 7000 },
        { host: "redis-b.internal", port: 7001 },
      ],
      shards: 1024,
    });
    expect(redisSection().parse({ url: "rediss+cluster://app:s3cret@10.0.0.1:7000,[::1]:7001" }).cluster).to.deep.equal([
      { host: "10.0.0.1", port: 7000 },
      { host: "::1", port: 7001 },
    ]);
  });

  it("refuses a node without a port, an empty list, a cluster URL with a path and an unknown scheme, saying what to write", function () {
    expect(issues({ cluster: ["10.0.0.1"] })).to.deep.equal(['cluster: "10.0.0.1" is not a cluster node: write host:port (e.g. 10.0.0.1:7000)']);
    expect(issues({ cluster: [] })[0]).to.match(/^cluster: redis.cluster needs at least one host:port/);
    expect(issues({ cluster: "10.0.0.1:7000" })[0]).to.match(/^cluster: redis.cluster is a list of host:port/);
    expect(issues({ url: "redis+cluster://10.0.0.1:7000/0" })).to.deep.equal(["url: write redis+cluster://host:port,host:port (no path or query)"]);
    expect(issues({ url: "http://10.0.0.1:7000" })[0]).to.match(/^url: a Redis URL starts with redis:\/\/, rediss:\/\/, or redis\+cluster:\/\//);
    expect(issues({ cluster: ["10.0.0.1:99999"] })[0]).to.match(/is not a cluster node/);
    expect(issues({ shards: 0 })[0]).to.match(/^shards:/);
  });
});
