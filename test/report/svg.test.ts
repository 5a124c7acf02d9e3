import assert from "node:assert/strict";
import fc from "fast-check";
import { coord, escapeXml, linearScale, niceTicks } from "../../ts/report/svg.js";
import { bitColor, LEGEND_BITS } from "../../ts/report/bitColors.js";

describe("report/svg helpers", () => {
  it("escapeXml escapes markup and quotes so a name cannot break out of text or attributes", () => {
    assert.equal(escapeXml(`<a href="x">&'</a>`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    fc.assert(
      fc.property(fc.string(), (s) => {
        const e = escapeXml(s);
        assert.ok(!/[<>"']/.test(e));
        assert.ok(!/&(?!amp;|lt;|gt;|quot;|#39;)/.test(e));
      }),
    );
  });

  it("coord rounds to 2 decimals and never prints -0", () => {
    assert.equal(coord(1.23456), "1.23");
    assert.equal(coord(-0.001), "0");
    assert.equal(coord(100), "100");
  });

  it("niceTicks covers the range with evenly spaced ascending ticks", () => {
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: -1e6, max: 1e6, noNaN: true }), (a, b) => {
        const lo = Math.min(a, b);
        const hi = Math.max(a, b);
        const ticks = niceTicks(lo, hi, 5);
        assert.ok(ticks.length >= 2 && ticks.length <= 13, `tick count ${ticks.length} for [${lo}, ${hi}]`);
        assert.ok(ticks[0]! <= lo && ticks[ticks.length - 1]! >= hi);
        const step = ticks[1]! - ticks[0]!;
        for (let i = 1; i < ticks.length; i++) {
          assert.ok(ticks[i]! > ticks[i - 1]!);
          assert.ok(Math.abs(ticks[i]! - ticks[i - 1]! - step) <= 1e-9 * Math.max(1, Math.abs(step), Math.abs(ticks[i]!)));
        }
      }),
    );
    assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.throws(() => niceTicks(0, Infinity), /finite/);
  });

  it("linearScale maps the domain ends to the range ends and a degenerate domain to the middle", () => {
    const s = linearScale(2, 4, 0, 100);
    assert.equal(s(2), 0);
    assert.equal(s(4), 100);
    assert.equal(linearScale(3, 3, 0, 100)(3), 50);
  });

  it("bit colours are distinct for every legend value, pruned and FP included", () => {
    const colours = LEGEND_BITS.map(bitColor);
    assert.equal(new Set(colours).size, colours.length);
  });
});
