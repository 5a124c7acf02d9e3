import assert from "node:assert/strict";
import { assertWellFormed } from "./xmlCheck.js";

// The report tests lean on this checker, so it must itself reject what a broken builder would produce.
describe("report test helper: assertWellFormed", () => {
  it("accepts nested, self-closing and escaped markup", () => {
    assertWellFormed(`<svg a="1"><g><path d="M0 0"/><text>a &amp; b &lt; c &#39;</text></g></svg>`);
  });

  it("rejects unbalanced tags, unquoted breakouts and raw ampersands", () => {
    assert.throws(() => assertWellFormed(`<svg><g></svg>`), /closes <g>/);
    assert.throws(() => assertWellFormed(`<svg><g>`), /unclosed tags svg, g/);
    assert.throws(() => assertWellFormed(`<text data-x="a"b">x</text>`), /malformed tag/);
    assert.throws(() => assertWellFormed(`<text>a & b</text>`), /unescaped &/);
    assert.throws(() => assertWellFormed(`<text>a < b</text>`), /malformed tag/);
  });
});
