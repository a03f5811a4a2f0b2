import { Module } from '@nestjs/common';

import { ModesModule } from '../modes/modes.module.js';
import { QueueModule } from '../queue/queue.module.js';
import { ModeSwitchController } from './mode-switch.controller.js';
import { ModeSwitchService } from './mode-switch.service.js';

@Module({
  imports: [ModesModule, QueueModule],
  controllers: [ModeSwitchController],
  providers: [ModeSwitchService],
})
export class ModeSwitchModule {}
