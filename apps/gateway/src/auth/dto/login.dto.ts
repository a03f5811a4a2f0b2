import { ApiProperty } from '@nestjs/swagger';
import { IsDefined, IsNotEmpty, IsString, MaxLength } from 'class-validator';

// Each decorator stack reads bottom-up (presence, type, range): see STRICT_VALIDATION.

/** The body of POST /api/session. */
export class LoginDto {
  @ApiProperty({ description: 'a key of API_KEY or ADMIN_API_KEY', example: 'k-…' })
  @MaxLength(1024, { message: 'must be at most 1024 characters' })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  @IsDefined({ message: 'is required' })
  key!: string;
}

export class SessionDto {
  @ApiProperty({ description: 'whether the server asks for a key at all (API_KEY or ADMIN_API_KEY set)' })
  auth_required!: boolean;

  @ApiProperty({ description: 'whether this session may call the admin routes (reload, switch, unload)' })
  admin!: boolean;
}

export class SessionStateDto extends SessionDto {
  @ApiProperty({ description: 'whether this request may call the API (its key, its session, or no key needed)' })
  authenticated!: boolean;
}
