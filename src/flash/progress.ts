/** Speed and ETA over a sliding window, as flashing tools show them. */
export class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 2000) {}

  /** Records the running byte count at time `t` (ms) and returns bytes per second. */
  update(bytes: number, t = performance.now()): number {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[1].t >= this.windowMs) this.samples.shift();
    return this.speed();
  }

  speed(): number {
    if (this.samples.length < 2) return 0;
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (b.bytes - a.bytes) / dt : 0;
  }

  /** Seconds left for `remaining` bytes at the current speed; null when unknown. */
  eta(remaining: number): number | null {
    const s = this.speed();
    return s > 0 ? remaining / s : null;
  }
}

/** "12.3 MB/s" (decimal, as card speeds are quoted). */
export function formatSpeed(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(bytesPerSecond >= 1e8 ? 0 : 1)} MB/s`;
}

/** "1:02:03" / "2:03" / "0:07". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
