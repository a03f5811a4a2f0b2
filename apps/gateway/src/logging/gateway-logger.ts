import { Injectable } from '@nestjs/common';
import { Logger } from 'nestjs-pino';

/**
 * Nest's own start-up chatter: a line per module initialised and per route mapped. Useful when a route seems
 * missing, noise on every start otherwise: it goes to debug, so that the default level shows a handful of lines
 * ending with the URL.
 */
const START_UP_CONTEXTS = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory']);

/** nestjs-pino's Logger, with Nest's start-up lines at debug. */
@Injectable()
export class GatewayLogger extends Logger {
  override log(message: unknown, ...optionalParams: unknown[]): void {
    const context = optionalParams.at(-1);
    if (typeof context === 'string' && START_UP_CONTEXTS.has(context)) {
      super.debug(message, ...optionalParams);
      return;
    }
    super.log(message, ...optionalParams);
  }
}
