import { Module } from '@nestjs/common';

import { ModelFilesProbe } from './model-files.probe.js';
import { ModesController } from './modes.controller.js';
import { ModesService } from './modes.service.js';

@Module({
  controllers: [ModesController],
  providers: [ModesService, ModelFilesProbe],
  exports: [ModesService, ModelFilesProbe],
})
export class ModesModule {}
