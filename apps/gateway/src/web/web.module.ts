import { Inject, Logger, Module, type OnApplicationBootstrap } from '@nestjs/common';

import { BUILT_PAGE_DIR, WebAssets } from './web-assets.js';
import { WebController } from './web.controller.js';

/** Serves the web page built from apps/web (README "Web page"). */
@Module({
  controllers: [WebController],
  providers: [{ provide: WebAssets, useFactory: () => new WebAssets(BUILT_PAGE_DIR) }],
})
export class WebModule implements OnApplicationBootstrap {
  constructor(@Inject(WebAssets) private readonly assets: WebAssets) {}

  onApplicationBootstrap(): void {
    if (!this.assets.built) {
      new Logger('Web').warn(`the web page is not built (no ${this.assets.dir}index.html): run npm run build`);
    }
  }
}
