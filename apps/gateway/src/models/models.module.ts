import { Module } from '@nestjs/common';

import { ModesModule } from '../modes/modes.module.js';
import { SidecarModule } from '../sidecar/sidecar.module.js';
import { ModelsController } from './models.controller.js';
import { ModelsService } from './models.service.js';

@Module({
  imports: [ModesModule, SidecarModule],
  controllers: [ModelsController],
  providers: [ModelsService],
})
export class ModelsModule {}
