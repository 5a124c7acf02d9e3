import assert from "node:assert/strict";
import { CACHE_BEAM_WIDTH, CACHE_POLISH_ROUNDS } from "../../ts/levels/tableCache.js";
import { cachedLevels, clearLevelCache, law, levelCacheSolveCount, nonNegativeLaw, solveLevels } from "../../ts/levels/index.js";

describe("levels/tableCache", () => {
  beforeEach(() => clearLevelCache());

  it("solves each (law, M, signedness) once and then returns the same table", () => {
    const first = cachedLevels("laplace", 3, true);
    assert.equal(levelCacheSolveCount(), 1);
    const again = cachedLevels("laplace", 3, true);
    assert.equal(again, first);
    assert.equal(levelCacheSolveCount(), 1);
    cachedLevels("laplace", 3, false);
    cachedLevels("laplace", 4, true);
    cachedLevels("gaussian", 3, true);
    assert.equal(levelCacheSolveCount(), 4);
    assert.ok(Object.isFrozen(first));
  });

  it("cached tables equal fresh solves; unsigned ones are fitted to |X|", () => {
    const wide = { beamWidth: CACHE_BEAM_WIDTH, polishRounds: CACHE_POLISH_ROUNDS };
    assert.deepEqual(cachedLevels("gaussian", 2, true).alpha, solveLevels(law("gaussian"), 2, wide).alpha);
    assert.deepEqual(cachedLevels("gaussian", 5, true).alpha, solveLevels(law("gaussian"), 5, wide).alpha);
    const unsigned = solveLevels(nonNegativeLaw("laplace"), 2, { signed: false, ...wide });
    assert.deepEqual(cachedLevels("laplace", 2, false).alpha, unsigned.alpha);
    assert.deepEqual(cachedLevels("exponential", 2, false).alpha, cachedLevels("laplace", 2, false).alpha);
  });

  it("rejects bad keys, naming them", () => {
    assert.throws(() => cachedLevels("cauchy" as never, 2, true), /unknown law "cauchy"/);
    assert.throws(() => cachedLevels("laplace", 12, true), /bits must be an integer in 1\.\.8, got 12/);
    assert.throws(() => cachedLevels("laplace", 2, "yes" as never), /signed must be a boolean/);
  });
});
