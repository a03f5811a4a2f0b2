import { Injectable, type OnModuleInit } from '@nestjs/common';

import type { ModesConfig } from '../modes/mode.types.js';
import { ModesService } from '../modes/modes.service.js';
import type { ModelDto, ModelListDto } from './dto/model.dto.js';

/** Every model is "owned" by this server: its modes come from its own modes.yaml. */
export const OWNED_BY = 'modelhost';

/** The modes as OpenAI's models (GET /v1/models). */
@Injectable()
export class OpenAiModelsService implements OnModuleInit {
  /**
   * Unix seconds when this gateway began serving each mode key (at start, or at the reload that added or changed
   * the mode): a mode has no creation time of its own, and an edited mode is, to a client, a new model.
   */
  private readonly servedSince = new Map<string, number>();

  constructor(private readonly modes: ModesService) {}

  onModuleInit(): void {
    this.record(this.modes.config);
    this.modes.onReload((config) => this.record(config));
  }

  list(): ModelListDto {
    return { object: 'list', data: [...this.modes.config.modes.keys()].map((name) => this.get(name)) };
  }

  /** @throws ModeNotFoundError */
  get(name: string): ModelDto {
    const mode = this.modes.getMode(name);
    return { id: mode.name, object: 'model', created: this.servedSince.get(mode.key) ?? 0, owned_by: OWNED_BY };
  }

  private record(config: ModesConfig): void {
    const now = Math.floor(Date.now() / 1000);
    const keys = new Set([...config.modes.values()].map((mode) => mode.key));
    for (const key of this.servedSince.keys()) if (!keys.has(key)) this.servedSince.delete(key);
    for (const key of keys) if (!this.servedSince.has(key)) this.servedSince.set(key, now);
  }
}
