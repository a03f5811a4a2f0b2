import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';

import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { ModeNotFoundError, ModesConfigError, ModesDisabledError } from '../errors/domain.errors.js';
import { ModelFilesProbe } from './model-files.probe.js';
import { loadModesConfig, parseModesFile, readModesFile } from './modes-config.loader.js';
import { DEFAULT_WATCHER_OPTIONS, ModesFileWatcher } from './modes-file.watcher.js';
import type { ModesConfig, ResolvedMode } from './mode.types.js';

/** What asked for a reload. */
export type ReloadTrigger = 'watcher' | 'SIGHUP' | 'api';

/** The last reload that failed, kept until a good file is loaded. */
export interface ReloadFailure {
  /** When it failed, ISO 8601. */
  readonly at: string;
  readonly trigger: ReloadTrigger;
  /** The file's path. */
  readonly source: string;
  /** "yaml.path: reason" lines, every one that was found. */
  readonly problems: readonly string[];
}

/** A reload that replaced the running configuration: what asked for it and what changed. */
export interface ReloadDetails {
  readonly trigger: ReloadTrigger;
  readonly diff: ModesDiff;
}

/**
 * Something the running configuration names that will not work as it stands, though the file is valid: a model file
 * not on disk (it may be copied in later, so the mode stays listed; a request for it answers 409 until then).
 */
export interface ReloadWarning {
  /** The YAML path of the field (`modes.x.model`). */
  readonly path: string;
  readonly message: string;
  /** The file the warning is about: it no longer holds once the file exists. */
  readonly file: string;
}

/** What changed between two snapshots, by mode name. */
export interface ModesDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Modes whose key changed: what the model host loads for them is different, so they load again on next use. */
  readonly changed: readonly string[];
  readonly defaultMode: { readonly from: string; readonly to: string } | undefined;
}

/**
 * The ModeConfigManager: holds the current modes configuration as one
 * immutable snapshot, so a reload swaps it in a single assignment. Nothing
 * that is running is touched: a job resolves its mode by name when it runs,
 * so it sees either the old snapshot or the new one, never a mix; a changed
 * mode has a new key (and loads again on its next use); a removed one is a
 * ModeNotFoundError from then on.
 *
 * Reloads come from a watcher on the file's folder (unless MODES_WATCH=0),
 * SIGHUP, and POST /api/modes/reload. An invalid file never replaces the
 * running configuration: the failure is logged and kept in `lastReloadError`
 * until a good file arrives.
 */
@Injectable()
export class ModesService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ModesService.name);
  private snapshot!: ModesConfig;
  private failure: ReloadFailure | undefined;
  private warnings: readonly ReloadWarning[] = [];
  /** The text the watcher saw last, so that an editor's burst of events reloads once. */
  private lastText: string | undefined;
  private watcher: ModesFileWatcher | undefined;
  private readonly reloadListeners: ((config: ModesConfig, details: ReloadDetails) => void)[] = [];
  private readonly rejectListeners: ((failure: ReloadFailure) => void)[] = [];
  private readonly onSighup = (): void => {
    if (this.snapshot.legacy) {
      this.logger.warn(`SIGHUP ignored: reload needs a modes.yaml (${this.appConfig.modesFile} not found at start)`);
      return;
    }
    this.tryReload('SIGHUP');
  };

  constructor(
    @Inject(APP_CONFIG) private readonly appConfig: AppConfig,
    private readonly files: ModelFilesProbe = new ModelFilesProbe(),
  ) {}

  /** Loaded here rather than in the constructor so a bad file fails app start with just its message. */
  onModuleInit(): void {
    this.snapshot = loadModesConfig(this.appConfig);
    if (this.snapshot.legacy) {
      this.logger.warn(
        `${this.appConfig.modesFile} not found: serving the single mode '${this.snapshot.defaultMode}' from the ` +
          'deprecated MODEL_ROOT/MODEL variables; mode switching and reload are off. Write a modes.yaml to define modes',
      );
    }
    this.logger.log(
      `${this.snapshot.modes.size} mode(s) from ${this.snapshot.source}: ${[...this.snapshot.modes.keys()].join(', ')} ` +
        `(default '${this.snapshot.defaultMode}')`,
    );
    this.warnings = this.checkFiles(this.snapshot);
    // Always listened to, even on the legacy setup: SIGHUP's default action would end the process.
    process.on('SIGHUP', this.onSighup);
    if (!this.snapshot.legacy && this.appConfig.modesWatch) {
      this.lastText = readModesFile(this.appConfig.modesFile, this.appConfig.modesFileMaxBytes);
      this.watcher = new ModesFileWatcher(this.appConfig.modesFile, () => this.onFileEvent(), this.logger, {
        ...DEFAULT_WATCHER_OPTIONS,
        pollMs: this.appConfig.modesWatchPollMs,
      });
      this.watcher.start();
    }
  }

  onModuleDestroy(): void {
    process.off('SIGHUP', this.onSighup);
    this.watcher?.close();
    this.watcher = undefined;
  }

  get config(): ModesConfig {
    return this.snapshot;
  }

  /** True when serving the one implicit mode of MODEL_ROOT/MODEL: reload and switching answer ModesDisabledError. */
  get isLegacy(): boolean {
    return this.snapshot.legacy;
  }

  /** The last failed reload, until a later reload succeeds; undefined when the running file is the latest. */
  get lastReloadError(): ReloadFailure | undefined {
    return this.failure;
  }

  /**
   * The warnings of the running configuration (start or last reload) that still hold: a missing file copied in since
   * drops out.
   */
  get reloadWarnings(): readonly ReloadWarning[] {
    return this.warnings.filter((warning) => !this.files.exists(warning.file));
  }

  /** `listener` is called with the new configuration after each reload that replaced the running one. */
  onReload(listener: (config: ModesConfig, details: ReloadDetails) => void): void {
    this.reloadListeners.push(listener);
  }

  /** `listener` is called with each failed reload (whatever asked for it), after it is logged and remembered. */
  onReloadRejected(listener: (failure: ReloadFailure) => void): void {
    this.rejectListeners.push(listener);
  }

  /** @throws ModeNotFoundError */
  getMode(name: string): ResolvedMode {
    const mode = this.snapshot.modes.get(name);
    if (!mode) throw new ModeNotFoundError(name, [...this.snapshot.modes.keys()]);
    return mode;
  }

  get defaultMode(): ResolvedMode {
    return this.getMode(this.snapshot.defaultMode);
  }

  /**
   * Reads and validates the modes file and, when it is valid, makes it the
   * running configuration. A changed default_mode is only recorded: nothing
   * loads until a request (or a switch) needs it.
   *
   * @throws ModesDisabledError on the legacy setup
   * @throws ModesConfigError when the file is missing, unreadable or invalid (the running configuration stays)
   */
  reload(trigger: ReloadTrigger): ModesConfig {
    if (this.snapshot.legacy) throw new ModesDisabledError('Mode reload');
    const source = this.appConfig.modesFile;
    let next: ModesConfig;
    try {
      const text = readModesFile(source, this.appConfig.modesFileMaxBytes);
      this.lastText = text;
      if (text === undefined) throw new ModesConfigError(source, [`modes.yaml not found: ${source}`]);
      next = parseModesFile(text, this.appConfig);
    } catch (error) {
      const failure =
        error instanceof ModesConfigError
          ? error
          : new ModesConfigError(source, [`cannot read: ${(error as Error).message}`]);
      this.failure = { at: new Date().toISOString(), trigger, source, problems: failure.problems };
      this.logger.error(
        `reload (${trigger}) refused, still serving the previous ${this.snapshot.modes.size} mode(s): ${failure.message}`,
      );
      for (const listener of this.rejectListeners) listener(this.failure);
      throw failure;
    }
    const diff = diffModes(this.snapshot, next);
    this.snapshot = next;
    this.failure = undefined;
    this.logger.log(`reloaded (${trigger}): ${describeReload(next, diff)}`);
    this.warnings = this.checkFiles(next);
    for (const listener of this.reloadListeners) listener(next, { trigger, diff });
    return next;
  }

  /** Each file the configuration names that is not on disk, one warning (and one log line) each. */
  private checkFiles(config: ModesConfig): ReloadWarning[] {
    if (config.legacy) return [];
    const warnings = [...config.modes.values()].flatMap((mode) =>
      this.files.missingFiles(mode).map(({ path, file }) => ({ path, file, message: `file not found: ${file}` })),
    );
    for (const warning of warnings) {
      this.logger.warn(
        `${warning.path}: ${warning.message} (the mode stays listed; requests for it answer 409 until the file is there)`,
      );
    }
    return warnings;
  }

  /** A reload whose failure is already logged and remembered; for the triggers that have no caller to answer. */
  private tryReload(trigger: ReloadTrigger): void {
    try {
      this.reload(trigger);
    } catch (error) {
      if (!(error instanceof ModesConfigError)) {
        this.logger.error(`reload (${trigger}) failed: ${(error as Error).message}`);
      }
    }
  }

  private onFileEvent(): void {
    let text: string | undefined;
    try {
      text = readModesFile(this.appConfig.modesFile, this.appConfig.modesFileMaxBytes);
    } catch {
      text = undefined; // reload() reports it
    }
    // Touched but not changed (an editor's extra events, a save without edits): nothing to do.
    if (text !== undefined && text === this.lastText) return;
    this.tryReload('watcher');
  }
}

export function diffModes(from: ModesConfig, to: ModesConfig): ModesDiff {
  const names = (config: ModesConfig): string[] => [...config.modes.keys()];
  return {
    added: names(to).filter((name) => !from.modes.has(name)),
    removed: names(from).filter((name) => !to.modes.has(name)),
    changed: names(to).filter((name) => {
      const before = from.modes.get(name);
      return before !== undefined && before.key !== to.modes.get(name)?.key;
    }),
    defaultMode: from.defaultMode === to.defaultMode ? undefined : { from: from.defaultMode, to: to.defaultMode },
  };
}

function describeReload(config: ModesConfig, diff: ModesDiff): string {
  const parts = [`${config.modes.size} mode(s): ${[...config.modes.keys()].join(', ')}`];
  if (diff.added.length > 0) parts.push(`added ${diff.added.join(', ')}`);
  if (diff.removed.length > 0) parts.push(`removed ${diff.removed.join(', ')}`);
  if (diff.changed.length > 0) parts.push(`changed ${diff.changed.join(', ')} (loaded again on next use)`);
  if (diff.defaultMode) parts.push(`default_mode '${diff.defaultMode.from}' -> '${diff.defaultMode.to}'`);
  if (parts.length === 1) parts.push('nothing the model host loads changed');
  return parts.join('; ');
}
