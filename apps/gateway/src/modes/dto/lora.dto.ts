import { IsDefined, IsNotEmpty, IsNumber, IsOptional, IsString } from 'class-validator';

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** One LoRA in its full form; the plain-string form is turned into this before validation. */
export class LoraDto {
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  path!: string;

  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number' })
  strength?: number;

  @IsOptional()
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  adapter_name?: string;
}
