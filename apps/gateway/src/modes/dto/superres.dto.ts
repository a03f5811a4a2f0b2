import { IsDefined, IsInt, IsNotEmpty, IsOptional, IsString, Max, Min } from 'class-validator';

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** An upscaler applied after generation when a request asks for `superres`. */
export class SuperresDto {
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  model!: string;

  @IsOptional()
  @Max(8, { message: 'must be at most 8' })
  @Min(2, { message: 'must be at least 2' })
  @IsInt({ message: 'must be an integer' })
  scale?: number;
}
