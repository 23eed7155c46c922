// Prettier, the one formatter of the repository (`npm run format` / `npm run format:check`). The options
// reproduce the style the code was written in, so that adopting Prettier changes as few lines as
// possible: single quotes, semicolons, trailing commas wherever allowed, two spaces. The print width is
// the typical longest line of today's files (the median file's longest code line is ~150 characters;
// 160 keeps most of them on one line while still breaking the few very long ones).

/** @type {import('prettier').Config} */
export default {
  printWidth: 160,
  tabWidth: 2,
  useTabs: false,
  semi: true,
  singleQuote: true,
  trailingComma: 'all',
  arrowParens: 'always',
  bracketSpacing: true,
  endOfLine: 'lf',
  overrides: [
    // Kubernetes manifests quote with double quotes (`apiGroups: [""]`), as kubectl and kubebuilder print them.
    { files: ['*.yaml', '*.yml'], options: { singleQuote: false } },
  ],
};
