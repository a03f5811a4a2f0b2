import { Module } from '@nestjs/common';

import { RegistryModule } from '../registry/registry.module.js';
import { ModeDefaultsAdvisor } from './mode-defaults.advisor.js';
import { ModelFilesProbe } from './model-files.probe.js';
import { ModesController } from './modes.controller.js';
import { ModesService } from './modes.service.js';

@Module({
  controllers: [ModesController],
  imports: [RegistryModule],
  providers: [ModesService, ModelFilesProbe, ModeDefaultsAdvisor],
  exports: [ModesService, ModelFilesProbe],
})
export class ModesModule {}
