import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/** One image of the reply: `b64_json` or `url`, as the request's response_format asked. */
export class ImageDataDto {
  @ApiPropertyOptional({ description: 'the PNG, base64 (response_format `b64_json`)' })
  b64_json?: string;

  @ApiPropertyOptional({
    format: 'uri',
    example: 'http://127.0.0.1:4200/api/jobs/0b9e.../image',
    description: 'the PNG at GET /api/jobs/{id}/image (response_format `url`); needs the API key when one is set',
  })
  url?: string;

  @ApiProperty({ type: 'integer', example: 42, description: 'ours: the seed it was made with' })
  seed!: number;
}

/** OpenAI's images reply. */
export class ImagesResponseDto {
  @ApiProperty({ type: 'integer', example: 1_767_225_600, description: 'Unix seconds when the images were done' })
  created!: number;

  @ApiProperty({ type: [ImageDataDto] })
  data!: ImageDataDto[];
}
