import { Module } from '@nestjs/common';

import { ModesModule } from '../modes/modes.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { GenerationController } from './generation.controller.js';
import { GenerationService } from './generation.service.js';

@Module({
  imports: [ModesModule, QueueModule],
  controllers: [GenerationController],
  providers: [GenerationService],
  exports: [GenerationService],
})
export class GenerationModule {}
