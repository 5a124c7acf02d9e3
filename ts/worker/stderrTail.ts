// The last lines a process wrote to stderr, kept for error messages when it dies.
export class StderrTail {
  private lines: string[] = [];
  private partial = "";

  constructor(private readonly maxLines = 40) {}

  push(chunk: Buffer | string): string[] {
    const text = this.partial + chunk.toString();
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    this.lines.push(...parts);
    if (this.lines.length > this.maxLines) this.lines = this.lines.slice(-this.maxLines);
    return parts;
  }

  toString(): string {
    return [...this.lines, this.partial].filter((l) => l.length > 0).slice(-this.maxLines).join("\n");
  }
}
