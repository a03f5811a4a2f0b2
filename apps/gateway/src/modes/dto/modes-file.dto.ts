import { IsDefined, IsNotEmpty, IsObject, IsOptional, IsString } from 'class-validator';

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** The top level of modes.yaml. Each entry of `modes` is validated as a ModeDto with its own path. */
export class ModesFileDto {
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  model_root!: string;

  @IsOptional()
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  lora_root?: string;

  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  default_mode!: string;

  @IsObject({ message: 'must be a mapping of mode names to modes' })
  @IsDefined({ message: 'is required' })
  modes!: Record<string, unknown>;
}
