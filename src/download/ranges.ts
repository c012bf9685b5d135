/** Half-open byte range [start, end). */
export type ByteRange = readonly [start: number, end: number];

/** A set of byte positions kept as sorted, disjoint, non-adjacent half-open ranges. */
export class RangeSet {
  private ranges: [number, number][] = [];

  constructor(initial: readonly ByteRange[] = []) {
    for (const [start, end] of initial) this.add(start, end);
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    const merged: [number, number][] = [];
    let placed = false;
    for (const range of this.ranges) {
      if (range[1] < start) merged.push(range);
      else if (range[0] > end) {
        if (!placed) merged.push([start, end]);
        placed = true;
        merged.push(range);
      } else {
        start = Math.min(start, range[0]);
        end = Math.max(end, range[1]);
      }
    }
    if (!placed) merged.push([start, end]);
    this.ranges = merged;
  }

  /** End of the run that covers `position`, or `position` itself when it is not covered. */
  coveredUntil(position: number): number {
    for (const [start, end] of this.ranges) {
      if (start <= position && position < end) return end;
      if (start > position) break;
    }
    return position;
  }

  get size(): number {
    return this.ranges.reduce((sum, [start, end]) => sum + end - start, 0);
  }

  /** The parts of [0, total) not in the set. */
  gaps(total: number): ByteRange[] {
    const out: ByteRange[] = [];
    let pos = 0;
    for (const [start, end] of this.ranges) {
      if (start > pos) out.push([pos, Math.min(start, total)]);
      pos = Math.max(pos, end);
    }
    if (pos < total) out.push([pos, total]);
    return out.filter(([start, end]) => end > start);
  }

  toJSON(): ByteRange[] {
    return this.ranges.map(([start, end]) => [start, end] as const);
  }
}
