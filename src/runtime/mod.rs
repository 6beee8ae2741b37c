pub mod logs;
pub mod process;
