import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

// Powertools reads its settings (service name, namespace, log level) from the POWERTOOLS_*
// variables that serverless.yml sets, so these two objects need no arguments.
export const logger = new Logger();
export const metrics = new Metrics();
