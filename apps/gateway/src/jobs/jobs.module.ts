import { Module } from '@nestjs/common';

import { EventsModule } from '../events/events.module.js';
import { GenerationModule } from '../generation/generation.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { JobsController } from './jobs.controller.js';
import { JobsService } from './jobs.service.js';

@Module({
  imports: [EventsModule, GenerationModule, QueueModule],
  controllers: [JobsController],
  providers: [JobsService],
})
export class JobsModule {}
