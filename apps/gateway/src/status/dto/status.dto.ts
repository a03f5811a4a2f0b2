import { ApiProperty, ApiPropertyOptional, OmitType } from '@nestjs/swagger';

/*
 * The replies of GET /api/models/status and GET /api/vram, key for key as the
 * spec shows them (snake_case). Keys beyond the spec's are marked "added".
 * Sizes are GiB (bytes / 2^30), rounded to 2 decimals; percentages to 1.
 */

export class VramLoraDto {
  @ApiProperty({ example: '/models/loras/portrait-enhancer.safetensors', description: 'absolute path' })
  path!: string;

  @ApiProperty({ example: 0.8 })
  strength!: number;

  @ApiProperty({ example: 'portrait' })
  adapter_name!: string;
}

export class VramModelDto {
  @ApiProperty({ example: 'sdxl-general', description: 'the mode the pipeline was loaded for' })
  name!: string;

  @ApiProperty({ example: '/models/sdxl/sdxl-base-1.0.safetensors' })
  model_path!: string;

  @ApiProperty({ example: 12.5, description: 'measured on the device after the load, GiB' })
  vram_gb!: number;

  @ApiProperty({ type: [VramLoraDto] })
  loras!: VramLoraDto[];

  @ApiProperty({
    example: 'sdxl-general-3f2a9c1b7d4e',
    description: "added: the model host's key (mode name + hash of its definition)",
  })
  key!: string;

  @ApiProperty({ example: 'sdxl-base', description: 'added: the architecture the model host detected' })
  architecture!: string;

  @ApiProperty({
    example: false,
    description:
      'added: a file it was loaded from changed since, or its mode was edited in modes.yaml (it is released ' +
      'behind the queued work); its mode loads again on next use',
  })
  stale!: boolean;

  @ApiProperty({ example: 13421772800, description: 'added: vram_gb in bytes, as the model host counts them' })
  bytes!: number;

  @ApiProperty({ example: 'gpu-box/cuda:0', description: 'added: the model host that holds it' })
  host!: string;
}

export class VramDto {
  @ApiProperty({ example: 'NVIDIA GeForce RTX 3090', description: "the device's name (on CPU hosts: the CPU's)" })
  device!: string;

  @ApiProperty({ example: 24.0 })
  total_gb!: number;

  @ApiProperty({ example: 12.5 })
  used_gb!: number;

  @ApiProperty({ example: 11.5 })
  available_gb!: number;

  @ApiProperty({ example: 52.1 })
  usage_percent!: number;

  @ApiProperty({ example: 1, description: 'pipelines on the device (the RAM tier not counted)' })
  models_loaded!: number;

  @ApiProperty({ type: [VramModelDto] })
  models!: VramModelDto[];

  @ApiProperty({ example: 'cuda', description: 'added: the kind of device the model host runs on, e.g. cuda or cpu' })
  device_type!: string;

  @ApiProperty({
    example: '2026-01-01T12:00:00.000Z',
    description:
      'added: when these figures were read from the model host (after each load and job, every second or so ' +
      'while a job runs; never while it is idle)',
  })
  as_of!: string;
}

/** One model host's own figures: the spec's vram keys for its device alone. */
export class HostVramDto extends OmitType(VramDto, ['as_of'] as const) {
  @ApiProperty({ example: '2026-01-01T12:00:00.000Z', description: 'when these figures were read from it' })
  as_of!: string;
}

export class VramHostDto {
  @ApiProperty({ example: 'gpu-box/cuda:0', description: '`<gateway id>/<device>`, as job records name it' })
  id!: string;

  @ApiProperty({ example: 'cuda:0', description: 'the device it was started on (or reports, when it chose)' })
  device!: string;

  @ApiProperty({ enum: ['starting', 'serving', 'lost', 'recovering', 'stopping'] })
  state!: string;

  @ApiProperty({ type: HostVramDto, nullable: true, description: 'null while its figures are not known' })
  vram!: HostVramDto | null;
}

/** GET /api/vram: the spec's keys over every model host (totals summed), then each host. */
export class VramReplyDto extends VramDto {
  @ApiProperty({ type: [VramHostDto], description: 'added: each model host (one per device), with its own figures' })
  hosts!: VramHostDto[];
}

export class StatusHostDto extends VramHostDto {
  @ApiProperty({ example: 'sd15-fast', nullable: true, type: String, description: 'the mode active on it' })
  current_mode!: string | null;

  @ApiProperty({
    example: 1,
    description: 'jobs it runs now (each member of a batch) and custom jobs waiting that name it',
  })
  queue_size!: number;
}

export class ReloadErrorDto {
  @ApiProperty({ example: '2026-01-01T12:00:00.000Z' })
  at!: string;

  @ApiProperty({ example: 'watcher', description: 'what asked for the reload' })
  trigger!: string;

  @ApiProperty({ example: '/srv/modes.yaml' })
  source!: string;

  @ApiProperty({ example: ['modes.portraits.loras[1].strength: must be a number'] })
  problems!: string[];
}

export class ReloadWarningDto {
  @ApiProperty({ example: 'modes.portraits.model', description: 'the YAML path of the field' })
  path!: string;

  @ApiProperty({ example: 'file not found: /models/sdxl/portrait.safetensors' })
  message!: string;
}

export class SwitchErrorDto {
  @ApiProperty({ example: '2026-01-01T12:00:00.000Z' })
  at!: string;

  @ApiProperty({ example: 'sd15-fast', description: 'the mode the failed switch was to' })
  mode!: string;

  @ApiProperty({ example: 'model_load_failed', description: "the error code the switch's caller would have got" })
  error!: string;

  @ApiProperty({ example: "Mode 'sd15-fast' could not be loaded: model file not found: /models/sd15.safetensors" })
  message!: string;
}

export class ModePolicyDto {
  @ApiProperty({ example: 'sdxl-general' })
  mode!: string;

  @ApiProperty({
    example: '5m',
    oneOf: [{ type: 'string' }, { type: 'number' }],
    description: 'as written in modes.yaml; -1 (until evicted) when absent',
  })
  keep_alive!: string | number;

  @ApiProperty({ example: 300000, nullable: true, type: Number, description: 'keep_alive in ms; null: until evicted' })
  keep_alive_ms!: number | null;

  @ApiProperty({ example: false, description: 'never evicted to make room for another mode' })
  pinned!: boolean;

  @ApiProperty({
    example: 'device',
    nullable: true,
    enum: ['device', 'ram'],
    type: String,
    description: 'where the model host holds the mode: on the device, parked in its RAM tier, or null: not loaded',
  })
  resident!: 'device' | 'ram' | null;

  @ApiProperty({
    example: '2026-01-01T12:05:00.000Z',
    nullable: true,
    type: String,
    description:
      'when its keep-alive takes it off the device; null while in use, not on the device, or kept until evicted',
  })
  expires_at!: string | null;
}

export class ModelsStatusDto {
  @ApiProperty({ example: 'sdxl-general', nullable: true, type: String, description: 'null until a mode is loaded' })
  current_mode!: string | null;

  @ApiProperty({ example: 2, description: 'jobs waiting their turn (the running one not counted)' })
  queue_size!: number;

  @ApiProperty({ type: VramDto })
  vram!: VramDto;

  @ApiProperty({ type: [StatusHostDto], description: 'added: each model host (one per device)' })
  hosts!: StatusHostDto[];

  @ApiPropertyOptional({
    type: ReloadErrorDto,
    nullable: true,
    description: 'added: the last failed reload of modes.yaml, until a good file is loaded; null when none',
  })
  last_reload_error!: ReloadErrorDto | null;

  @ApiPropertyOptional({
    type: [ReloadWarningDto],
    description:
      'added: what the running modes.yaml names that is not on disk (a missing model file), from the start or the ' +
      'last reload, while it still holds; a request for such a mode answers 409 model_file_missing',
  })
  reload_warnings!: ReloadWarningDto[];

  @ApiPropertyOptional({
    type: SwitchErrorDto,
    nullable: true,
    description:
      'added: the last failed mode switch (POST /api/modes/switch, or the default mode at start), until a switch ' +
      'succeeds; null when none',
  })
  last_switch_error!: SwitchErrorDto | null;

  @ApiProperty({
    type: [ModePolicyDto],
    description: "added: each mode's memory policy (keep_alive, pinned), where it is held and when it expires",
  })
  memory_policy!: ModePolicyDto[];
}
