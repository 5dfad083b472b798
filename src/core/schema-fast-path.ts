/**
 * A fast path in front of valibot, generated from the same schemas. `compileFastPath(schema)` gives
 * a function that either accepts a value, returning exactly what `v.safeParse(schema, value)` would
 * output (the same fields in the same key order, the same references where valibot passes values
 * through), or declines it with {@link DECLINED}: the caller then runs valibot itself, so every
 * rejection and its issue stay valibot's. The fast path can only be wrong by accepting what valibot
 * rejects or by outputting something else; `test/core/schema-fast-path.test.ts` feeds both
 * thousands of generated valid and invalid frames to show it does neither.
 *
 * Why generated code: valibot walks a tree of schema objects, allocating a dataset per node, and a
 * tree of closures is no faster (every object schema shares one closure body, so its property
 * reads see every message shape and stay megamorphic). A function generated per message type
 * reads each field by name, as a hand-written check would: ~10x fewer cycles than valibot.
 *
 * The generated source holds only what the schema holds (field names, as JSON string literals;
 * numeric limits); functions of the schema (`v.check`, `v.custom`) and any part the generator does
 * not mirror (a default, a fallback, a transformation, a schema type added later) are passed in and
 * called, the latter through valibot's own `~run`, so nothing is ever checked less than valibot
 * checks it. Where code generation is not allowed (Cloudflare Workers, `--disallow-code-generation-
 * from-strings`), there is no fast path and valibot does all the work.
 *
 * Mirrored from valibot 1.x's `~run`: object, looseObject, string, number, boolean, literal,
 * picklist, unknown, custom, nullable, nullish, optional, union, pipe with minLength, maxLength,
 * maxBytes, integer, minValue, maxValue and check.
 */
import type * as v from 'valibot';

/** What a fast path returns when it does not accept the value: valibot decides. */
export const DECLINED: unique symbol = Symbol('declined');
export type FastPath = (value: unknown) => unknown;

/** The parts of valibot's schema and action objects the generator reads. */
interface Node {
  readonly kind: 'schema' | 'validation' | 'transformation' | 'metadata';
  readonly type: string;
  readonly async: boolean;
  readonly pipe?: readonly Node[];
  readonly entries?: Readonly<Record<string, Node>>;
  readonly options?: readonly unknown[];
  readonly wrapped?: Node;
  readonly literal?: unknown;
  readonly requirement?: unknown;
  readonly check?: (value: unknown) => boolean;
  readonly default?: unknown;
  readonly fallback?: unknown;
  '~run'(
    dataset: { typed?: boolean; value: unknown },
    config: v.Config<v.BaseIssue<unknown>>,
  ): { typed: boolean; value: unknown; issues?: unknown };
}

const CONFIG: v.Config<v.BaseIssue<unknown>> = { abortEarly: true };
/** Entries an object may lack (valibot's own list). */
const OPTIONAL_TYPES = new Set(['optional', 'nullish', 'exact_optional']);
/** Keys valibot never copies from the input (prototype pollution). */
const UNSAFE_KEYS = ['__proto__', 'prototype', 'constructor'];

/** Valibot itself, for a part of a schema the generator does not mirror. */
function delegate(node: Node): FastPath {
  return (value) => {
    const dataset = node['~run']({ value }, CONFIG);
    return dataset.issues || !dataset.typed ? DECLINED : dataset.value;
  };
}

/** Valibot's own run of one pipe action on a value its schema accepted. */
function delegateAction(action: Node): FastPath {
  return (value) => {
    const dataset = action['~run']({ typed: true, value }, CONFIG);
    return dataset.issues || !dataset.typed ? DECLINED : dataset.value;
  };
}

/** What the functions generated for one schema share: names, references, hoisted functions. */
interface Context {
  names: number;
  readonly refs: unknown[];
  readonly functions: string[];
}

/** Generates the body of one function; values it cannot write as source go into `refs`. */
class Generator {
  private readonly lines: string[] = [];

  constructor(readonly context: Context) {}

  name(prefix: string): string {
    return `${prefix}${this.context.names++}`;
  }

  ref(value: unknown): string {
    this.context.refs.push(value);
    return `refs[${this.context.refs.length - 1}]`;
  }

  emit(line: string): void {
    this.lines.push(line);
  }

  source(): string {
    return this.lines.join('\n');
  }

  /** Calls valibot for `node` on `input`; returns the variable holding its output. */
  delegated(fn: FastPath, input: string): string {
    const out = this.name('d');
    this.emit(`const ${out} = ${this.ref(fn)}(${input});`);
    this.emit(`if (${out} === D) return D;`);
    return out;
  }

  /**
   * Emits the checks of `node` on the variable `input` (each failure: `return D`) and returns the
   * expression of its output.
   */
  node(node: Node, input: string): string {
    if (node.async) return this.delegated(delegate(node), input);
    if (node.pipe) return this.pipe(node.pipe, input);
    switch (node.type) {
      case 'string':
      case 'boolean':
        this.emit(`if (typeof ${input} !== ${JSON.stringify(node.type)}) return D;`);
        return input;
      case 'number':
        this.emit(`if (typeof ${input} !== "number" || ${input} !== ${input}) return D;`);
        return input;
      case 'unknown':
        return input;
      case 'literal':
        return this.literal(node, input);
      case 'picklist':
        this.emit(`if (!${this.ref(node.options)}.includes(${input})) return D;`);
        return input;
      case 'custom':
        this.emit(`if (!${this.ref(node.check)}(${input})) return D;`);
        return input;
      case 'optional':
      case 'nullable':
      case 'nullish':
        return node.default === undefined
          ? this.wrapper(node, input)
          : this.delegated(delegate(node), input);
      case 'object':
      case 'loose_object':
        return this.object(node, input);
      case 'union':
        return this.union(node, input);
      default:
        return this.delegated(delegate(node), input);
    }
  }

  private literal(node: Node, input: string): string {
    const literal = node.literal;
    if (typeof literal === 'number' && Number.isNaN(literal))
      this.emit(`if (${input} === ${input}) return D;`);
    else if (
      typeof literal === 'string' ||
      typeof literal === 'boolean' ||
      (typeof literal === 'number' && Number.isFinite(literal))
    )
      // SameValueZero: 0 and -0 are one literal, as `===` has them.
      this.emit(`if (${input} !== ${JSON.stringify(literal)}) return D;`);
    else return this.delegated(delegate(node), input);
    return input;
  }

  private wrapper(node: Node, input: string): string {
    const out = this.name('w');
    const test =
      node.type === 'optional'
        ? `${input} === undefined`
        : node.type === 'nullable'
          ? `${input} === null`
          : `${input} === undefined || ${input} === null`;
    this.emit(`let ${out} = ${input};`);
    this.emit(`if (!(${test})) {`);
    this.emit(`${out} = ${this.node(node.wrapped!, input)};`);
    this.emit('}');
    return out;
  }

  private pipe(items: readonly Node[], input: string): string {
    let out = this.node(items[0]!, input);
    for (const item of items.slice(1)) {
      if (item.kind === 'metadata') continue;
      if (item.kind === 'schema') {
        const value = this.name('p');
        this.emit(`const ${value} = ${out};`);
        out = this.node(item, value);
        continue;
      }
      if (item.kind === 'validation' && this.action(item, out)) continue;
      // A transformation, or a check the generator does not mirror: valibot's own.
      out = this.delegated(delegateAction(item), out);
    }
    return out;
  }

  /** Emits a pipe action on `value` (already its schema's output); false when not mirrored. */
  private action(action: Node, value: string): boolean {
    const requirement = action.requirement;
    const isNumber = typeof requirement === 'number';
    switch (action.type) {
      case 'min_length':
        if (!isNumber) return false;
        this.emit(`if (${value}.length < ${requirement}) return D;`);
        return true;
      case 'max_length':
        if (!isNumber) return false;
        this.emit(`if (${value}.length > ${requirement}) return D;`);
        return true;
      case 'max_bytes':
        if (!isNumber) return false;
        // A UTF-16 unit takes 3 UTF-8 bytes at most: only a long string needs valibot's count.
        this.emit(
          `if (${value}.length * 3 > ${requirement} && ${this.ref(delegateAction(action))}(${value}) === D) return D;`,
        );
        return true;
      case 'integer':
      case 'check':
        if (typeof requirement !== 'function') return false;
        this.emit(`if (!${this.ref(requirement)}(${value})) return D;`);
        return true;
      case 'min_value':
        if (!isNumber) return false;
        this.emit(`if (!(${value} >= ${requirement})) return D;`);
        return true;
      case 'max_value':
        if (!isNumber) return false;
        this.emit(`if (!(${value} <= ${requirement})) return D;`);
        return true;
      default:
        return false;
    }
  }

  private object(node: Node, input: string): string {
    const entries = node.entries!;
    for (const key in entries) {
      // A default or fallback fills a missing key in: not mirrored.
      if (entries[key]!.default !== undefined || entries[key]!.fallback !== undefined)
        return this.delegated(delegate(node), input);
    }
    this.emit(`if (!${input} || typeof ${input} !== "object") return D;`);
    const out = this.name('o');
    this.emit(`const ${out} = {};`);
    // Entries in the schema's key order (valibot's `for...in`), each set in the output as checked.
    for (const key in entries) {
      const entry = entries[key]!;
      const literal = JSON.stringify(key);
      const value = this.name('v');
      this.emit(`const ${value} = ${input}[${literal}];`);
      // Present means `in`, as valibot tests it: a key holding undefined is present.
      this.emit(`if (${value} !== undefined || ${literal} in ${input}) {`);
      this.emit(`${out}[${literal}] = ${this.node(entry, value)};`);
      if (!OPTIONAL_TYPES.has(entry.type)) this.emit('} else return D;');
      else this.emit('}');
    }
    if (node.type === 'loose_object') {
      // Then the input's other own keys, in its order (valibot's `_isValidObjectKey`).
      const key = this.name('k');
      const skipped = [...Object.keys(entries), ...UNSAFE_KEYS];
      this.emit(`for (const ${key} in ${input}) {`);
      this.emit(`if (!hasOwn.call(${input}, ${key})) continue;`);
      this.emit(`switch (${key}) {`);
      for (const name of skipped) this.emit(`case ${JSON.stringify(name)}:`);
      this.emit('break;');
      this.emit(`default: ${out}[${key}] = ${input}[${key}];`);
      this.emit('}');
      this.emit('}');
    }
    return out;
  }

  private union(node: Node, input: string): string {
    // Each option a function of its own, tried in order: the first that accepts wins.
    const out = this.name('u');
    this.emit(`let ${out} = D;`);
    for (const option of node.options as Node[]) {
      const fn = this.name('option');
      const inner = new Generator(this.context);
      const result = inner.node(option, 'x');
      this.context.functions.push(`function ${fn}(x) {\n${inner.source()}\nreturn ${result};\n}`);
      this.emit(`if (${out} === D) ${out} = ${fn}(${input});`);
    }
    this.emit(`if (${out} === D) return D;`);
    return out;
  }
}

/** The source of a function of `D` (DECLINED), `refs` and `hasOwn` returning `schema`'s fast path. */
function generate(schema: v.GenericSchema): { source: string; refs: unknown[] } {
  const context: Context = { names: 0, refs: [], functions: [] };
  const generator = new Generator(context);
  const result = generator.node(schema as unknown as Node, 'input');
  const main = `function fastPath(input) {\n${generator.source()}\nreturn ${result};\n}`;
  return {
    source: `"use strict";\n${[...context.functions, main].join('\n')}\nreturn fastPath;`,
    refs: context.refs,
  };
}

/**
 * The fast path of `schema`: its output, or {@link DECLINED} where valibot must decide. Undefined
 * where the runtime does not allow generating code (valibot alone then), or should generating it
 * fail for a schema: a fast path is never a reason for a message type not to work.
 */
export function compileFastPath(schema: v.GenericSchema): FastPath | undefined {
  try {
    const { source, refs } = generate(schema);
    return new Function('D', 'refs', 'hasOwn', source)(
      DECLINED,
      refs,
      Object.prototype.hasOwnProperty,
    ) as FastPath;
  } catch {
    return undefined;
  }
}

/** The generated source of `schema`'s fast path, to read what it checks. */
export function fastPathSource(schema: v.GenericSchema): string {
  return generate(schema).source;
}
