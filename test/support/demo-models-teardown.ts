import { rmSync } from 'node:fs';

import { demoDir } from './demo-models';

/** jest globalTeardown: the demo models of this run go with it. */
export default function removeDemoModels(): void {
  rmSync(demoDir(), { recursive: true, force: true });
}
