//! BuildKit's AST dump (`node.Dump()`): one S-expression per instruction,
//! strings quoted with Go's `%q`.

use super::gostr;
use super::{Ast, Node};

/// The dump of a whole file, one line per instruction, no trailing newline.
pub fn dump(ast: &Ast) -> String {
    let mut out = String::new();
    for (i, child) in ast.children.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push('(');
        out.push_str(&dump_node(child));
        out.push(')');
    }
    out
}

/// The dump of one instruction, without the enclosing parentheses.
pub fn dump_node(node: &Node) -> String {
    let mut s = gostr::to_lower(&node.value);
    if !node.flags.is_empty() {
        s.push(' ');
        s.push_str(&gostr::quote_list(&node.flags));
    }
    for arg in &node.args {
        s.push(' ');
        s.push_str(&gostr::quote(arg));
    }
    if let Some(sub) = &node.sub {
        s.push_str(" (");
        s.push_str(&dump_node(sub));
        s.push(')');
    }
    gostr::trim_space(&s).to_string()
}
