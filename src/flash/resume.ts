/**
 * The resume journal: where an interrupted flash stopped, per image and card, so
 * `crashcart flash --resume` can continue after the card or reader is re-inserted.
 *
 * Stored as JSON in `$XDG_STATE_HOME/crashcart/resume.json` (default
 * `~/.local/state/crashcart/resume.json`). An entry is keyed by the image (resolved path, size
 * and modification time — a changed image never resumes) and the card (serial number when the
 * backend knows one, else the device name, plus its size).
 */
import { mkdir } from 'node:fs/promises';
import { WriteGate } from '../gate/write-gate.js';
import { readFileBounded, STATE_MAX_BYTES } from '../input-limits.js';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BlockDevice } from '../blockdev/block-device.js';
import type { ImageSource } from './source.js';

export interface ResumeEntry {
  key: string;
  image: string;
  device: string;
  offset: number;
  updated: string;
}

export function defaultJournalPath(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'crashcart', 'resume.json');
}

export function resumeKey(src: Pick<ImageSource, 'realPath' | 'fileSize' | 'fileMtimeMs' | 'bmap'>, dev: BlockDevice): string {
  const card = dev.info.serial ? `serial=${dev.info.serial}` : `name=${dev.info.name}`;
  return JSON.stringify([src.realPath, src.fileSize, Math.round(src.fileMtimeMs), src.bmap?.path ?? null, card, dev.size]);
}

export class ResumeJournal {
  /** Updates run one after another, in call order: a later checkpoint is never overwritten by an earlier one. */
  private chain: Promise<unknown> = Promise.resolve();

  /** `gate` refuses a journal path that is an input of the command (default: a gate with none). */
  constructor(
    readonly path = defaultJournalPath(),
    private readonly gate = new WriteGate(),
  ) {}

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async load(): Promise<ResumeEntry[]> {
    try {
      // Our own file, but bounded all the same: an oversize journal is ignored like a corrupt one.
      const v = JSON.parse(readFileBounded(this.path, STATE_MAX_BYTES, 'resume journal').toString('utf8')) as unknown;
      return Array.isArray(v) ? (v as ResumeEntry[]).filter((e) => typeof e?.key === 'string' && Number.isSafeInteger(e.offset)) : [];
    } catch {
      return [];
    }
  }

  private async save(entries: ResumeEntry[]): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    await this.gate.replaceFile(this.path, JSON.stringify(entries, null, 1), 'resume journal');
  }

  async get(key: string): Promise<ResumeEntry | undefined> {
    return (await this.load()).find((e) => e.key === key);
  }

  set(key: string, image: string, device: string, offset: number): Promise<void> {
    return this.serial(() => this.setNow(key, image, device, offset));
  }

  private async setNow(key: string, image: string, device: string, offset: number): Promise<void> {
    const entries = (await this.load()).filter((e) => e.key !== key);
    entries.push({ key, image, device, offset, updated: new Date().toISOString() });
    await this.save(entries.slice(-50));
  }

  clear(key: string): Promise<void> {
    return this.serial(() => this.clearNow(key));
  }

  private async clearNow(key: string): Promise<void> {
    const entries = await this.load();
    const rest = entries.filter((e) => e.key !== key);
    if (rest.length !== entries.length) await this.save(rest);
  }
}
