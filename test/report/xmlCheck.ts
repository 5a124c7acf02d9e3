// A small well-formedness check for the SVG/HTML the report writes (no XML parser among the dependencies):
// balanced tags, quoted attributes, no stray "<" or unescaped "&" in text. Enough to catch broken escaping.

import assert from "node:assert/strict";

const VOID_HTML = new Set(["meta", "br", "hr", "img", "input", "link"]);
const TAG = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+(?:="[^"<]*")?)*)\s*(\/?)>/y;
const ENTITY = /^&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);/;

export function assertWellFormed(markup: string, what = "markup"): void {
  const stack: string[] = [];
  let i = 0;
  while (i < markup.length) {
    const ch = markup[i];
    if (ch === "<") {
      if (markup.startsWith("<!DOCTYPE", i)) {
        i = markup.indexOf(">", i) + 1;
        continue;
      }
      if (stack[stack.length - 1] === "script" || stack[stack.length - 1] === "style") {
        const close = markup.indexOf(`</${stack[stack.length - 1]}>`, i);
        assert.ok(close >= 0, `${what}: unclosed <${stack[stack.length - 1]}>`);
        i = close;
        stack.pop();
        i = markup.indexOf(">", i) + 1;
        continue;
      }
      TAG.lastIndex = i;
      const m = TAG.exec(markup);
      assert.ok(m, `${what}: malformed tag at offset ${i}: ${JSON.stringify(markup.slice(i, i + 80))}`);
      const [whole, closing, name, , selfClosing] = m;
      if (closing) {
        const open = stack.pop();
        assert.equal(open, name, `${what}: </${name}> at offset ${i} closes <${open}>`);
      } else if (!selfClosing && !VOID_HTML.has(name!)) {
        stack.push(name!);
      }
      i += whole.length;
    } else if (ch === "&") {
      assert.ok(ENTITY.test(markup.slice(i, i + 12)), `${what}: unescaped & at offset ${i}: ${JSON.stringify(markup.slice(i, i + 30))}`);
      i++;
    } else {
      i++;
    }
  }
  assert.deepEqual(stack, [], `${what}: unclosed tags ${stack.join(", ")}`);
}

/** Occurrences of a regular expression (global flag added). */
export function countMatches(text: string, pattern: RegExp): number {
  return [...text.matchAll(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : pattern.flags + "g"))].length;
}
