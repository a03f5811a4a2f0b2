import { Logger } from '@nestjs/common';

// Unit tests assert on behaviour; the services' logs would only bury jest's report.
Logger.overrideLogger(false);
