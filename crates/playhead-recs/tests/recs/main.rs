//! Integration tests of the offline tools, through files as the CLI uses them (one test binary,
//! STACK.md's CI budget). Data is CI-sized: well under 2,000 titles.

mod offline;
