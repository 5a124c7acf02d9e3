// The ImageNet recipe of examples/ on a tiny ImageFolder this test writes (2 classes x 8 images of 32x32 per
// split), resnet18 at image size 32, one epoch on 2 gloo ranks: the recipe runs end to end, nothing is claimed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { imagenetRecipe } from "../../examples/imagenet-resnet18.js";
import { Experiment } from "../../ts/experiment/index.js";
import { workerPython } from "../../ts/worker/index.js";

const WRITE_FOLDER = `
import sys, numpy as np
from pathlib import Path
from PIL import Image
root, rng = Path(sys.argv[1]), np.random.default_rng(0)
for split in ("train", "val"):
    for c, tint in enumerate(((200, 40, 40), (40, 40, 200))):
        (root / split / f"class{c}").mkdir(parents=True)
        for i in range(8):
            px = np.clip(rng.normal(tint, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(root / split / f"class{c}" / f"{i}.png")
`;

describe("ImageNet recipe on a tiny ImageFolder", function () {
  this.timeout(180_000);

  it("trains resnet18 for one epoch at image size 32 on 2 ranks", async function () {
    const data = mkdtempSync(join(tmpdir(), "dmbq-imagefolder-"));
    const made = spawnSync(workerPython(), ["-c", WRITE_FOLDER, data], { encoding: "utf8" });
    if (made.status !== 0 && /No module named 'PIL'/.test(made.stderr)) this.skip();
    assert.equal(made.status, 0, made.stderr);
    const recipe = imagenetRecipe({
      data, runsDir: mkdtempSync(join(tmpdir(), "dmbq-imagenet-runs-")), model: "resnet18", gpus: 2, epochs: 1,
      batch: 8, imageSize: 32, wbits: 2, abits: 2, trainLimit: 0, testLimit: 0, loaderWorkers: 0,
    });
    assert.deepEqual(recipe.fp.schedule?.milestones, [0, 1, 1]);
    const saved = { ...process.env };
    Object.assign(process.env, { DMBQ_DIST_BACKEND: "gloo", OMP_NUM_THREADS: "1" });
    try {
      const run = await Experiment.start({ ...recipe.fp, progress: "none" });
      const result = await run.result;
      assert.equal(result.epochs, 1);
      assert.ok(result.top1 >= 0 && result.top1 <= 100);
    } finally {
      process.env = saved;
    }
  });
});
