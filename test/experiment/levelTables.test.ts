// The weight tables the experiment sends per levels mode, in the units the worker scales them by.
import assert from "node:assert/strict";
import { actTable, buildTables, weightTable } from "../../ts/experiment/levelTables.js";

const close = (got: readonly number[], want: readonly number[], what: string): void => {
  assert.equal(got.length, want.length, what);
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) <= 1e-12, `${what}[${i}]: ${g} vs ${want[i]}`));
};

describe("level tables: uniformMax (the min-max grid, in units of max|w|)", () => {
  it("α_i = 2^(M−1−i) / (2^M − 1) for M = 1..4: descending, summing to a top level of 1", () => {
    const want: Record<number, number[]> = { 1: [1], 2: [2 / 3, 1 / 3], 3: [4 / 7, 2 / 7, 1 / 7], 4: [8 / 15, 4 / 15, 2 / 15, 1 / 15] };
    for (const [bits, alpha] of Object.entries(want)) close(weightTable("uniformMax", Number(bits)).alpha, alpha, `M=${bits} alpha`);
    for (let bits = 1; bits <= 8; bits++) {
      const t = weightTable("uniformMax", bits);
      assert.ok(Math.abs(t.alpha.reduce((a, b) => a + b, 0) - 1) <= 1e-12, `M=${bits}: the top level is 1`);
    }
  });

  it("levels: 2^M evenly spaced from −1 to 1 (the α's sign sums), thresholds at their midpoints, no mse", () => {
    close(weightTable("uniformMax", 2).levels, [-1, -1 / 3, 1 / 3, 1], "M=2 levels");
    close(weightTable("uniformMax", 2).thresholds, [-2 / 3, 0, 2 / 3], "M=2 thresholds");
    for (let bits = 1; bits <= 8; bits++) {
      const t = weightTable("uniformMax", bits);
      const steps = 2 ** bits - 1;
      close(t.levels, Array.from({ length: steps + 1 }, (_, k) => -1 + (2 * k) / steps), `M=${bits} levels`);
      close(t.thresholds, t.levels.slice(1).map((l, i) => (l + t.levels[i]!) / 2), `M=${bits} thresholds`);
      assert.equal(t.mse, undefined);
      assert.ok(!("mse" in JSON.parse(JSON.stringify(t))), "levels.json carries no mse for it");
    }
  });

  it("differs from the Laplace law's best uniform grid, whose top level is in mean|w| units", () => {
    const laplace = weightTable("uniform", 2);
    assert.ok(laplace.mse !== undefined && laplace.levels.at(-1)! > 1.5, `uniform: top ${laplace.levels.at(-1)}`);
    assert.notDeepEqual(weightTable("uniformMax", 2).alpha, laplace.alpha);
  });

  it("keeps the activations' tables of the uniform mode (the Laplace law's), and records its mode", () => {
    for (let bits = 1; bits <= 4; bits++) assert.deepEqual(actTable("uniformMax", bits), actTable("uniform", bits));
    const set = buildTables("uniformMax", "table");
    assert.equal(set.record.mode, "uniformMax");
    assert.deepEqual(set.record.act, buildTables("uniform", "table").record.act);
    assert.deepEqual(set.record.weight.map((t) => t.bits), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(set.record.perLayer, undefined);
    const two = set.weight.find((t) => t.bits === 2)!;
    close(Array.from(new Float32Array(two.alphaF32.buffer.slice(two.alphaF32.byteOffset, two.alphaF32.byteOffset + 8))), [Math.fround(2 / 3), Math.fround(1 / 3)], "sent alpha");
  });
});
