import { ApiProperty } from '@nestjs/swagger';

/** A mode in OpenAI's model shape. */
export class ModelDto {
  @ApiProperty({ example: 'sdxl-general', description: 'the mode name' })
  id!: string;

  @ApiProperty({ enum: ['model'] })
  object!: 'model';

  @ApiProperty({
    type: 'integer',
    example: 1_767_225_600,
    description: "Unix seconds when this gateway first served the mode's present definition",
  })
  created!: number;

  @ApiProperty({ example: 'modelhost' })
  owned_by!: string;
}

export class ModelListDto {
  @ApiProperty({ enum: ['list'] })
  object!: 'list';

  @ApiProperty({ type: [ModelDto] })
  data!: ModelDto[];
}
