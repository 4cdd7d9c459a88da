// Imported first by the tools that load the AWS SDK: on Node 20 the SDK prints a nine-line
// NodeVersionSupportWarning when its first client is made, unless this variable is 'true' by then.
// The local runtime does the same (local/runtime.ts). A value the user set is left as it is.

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export {};
