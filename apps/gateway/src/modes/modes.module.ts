import { Module } from '@nestjs/common';

import { ModesController } from './modes.controller.js';
import { ModesService } from './modes.service.js';

@Module({
  controllers: [ModesController],
  providers: [ModesService],
  exports: [ModesService],
})
export class ModesModule {}
