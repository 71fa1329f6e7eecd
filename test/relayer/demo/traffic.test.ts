/**
 * The demo's LiteLLM sample: its calls fall in one usage bucket whatever the time of day, so that the traffic settles
 * in one batch (the demo's e2e test failed when it ran in the first minute of an hour: two batches for the traffic).
 */
import { expect } from "chai";

import { demoTraffic, sampleEnd } from "../../../relayer/demo/traffic.js";

describe("relayer/demo traffic: the sample sits in one usage bucket", function () {
  const HOUR = 3600;
  const bucketOf = (startSeconds: number) => Math.floor(startSeconds / HOUR);

  it("ends the sample at the bucket's start when the minute before now crosses it, else at now", function () {
    const boundary = 1_796_389_200; // a whole hour
    expect(sampleEnd(boundary + 30, HOUR)).to.equal(boundary);
    expect(sampleEnd(boundary, HOUR)).to.equal(boundary);
    expect(sampleEnd(boundary + 60, HOUR)).to.equal(boundary + 60);
    expect(sampleEnd(boundary + 1800, HOUR)).to.equal(boundary + 1800);
    for (let offset = 0; offset < 120; offset += 7) {
      const calls = demoTraffic({ count: 600, keyAliases: ["a", "b"], now: sampleEnd(boundary + offset, HOUR) });
      const buckets = new Set(calls.map((call) => bucketOf(Number(call.entry["startTime"]))));
      expect(buckets.size, `now = boundary + ${offset} s`).to.equal(1);
    }
  });
});
