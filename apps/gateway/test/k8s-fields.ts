/**
 * Unknown-field check for rendered Kubernetes objects. kubernetes-models validates types and
 * required fields but ignores unknown ones, so a misspelled key (`replcas`) would pass. This walks
 * an object against the TypeScript interfaces kubernetes-models ships (read with the TypeScript
 * compiler API): every key must be a declared property of its interface; maps (index signatures:
 * labels, annotations, data) accept any key.
 */
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

/** `apiVersion/kind` -> [module of kubernetes-models, interface name]. */
const INTERFACES: Record<string, [string, string]> = {
  'apps/v1/Deployment': ['kubernetes-models/apps/v1/Deployment', 'IDeployment'],
  'apps/v1/StatefulSet': ['kubernetes-models/apps/v1/StatefulSet', 'IStatefulSet'],
  'autoscaling/v2/HorizontalPodAutoscaler': [
    'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
    'IHorizontalPodAutoscaler',
  ],
  'networking.k8s.io/v1/NetworkPolicy': [
    'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
    'INetworkPolicy',
  ],
  'policy/v1/PodDisruptionBudget': [
    'kubernetes-models/policy/v1/PodDisruptionBudget',
    'IPodDisruptionBudget',
  ],
  'v1/ConfigMap': ['kubernetes-models/v1/ConfigMap', 'IConfigMap'],
  'v1/Secret': ['kubernetes-models/v1/Secret', 'ISecret'],
  'v1/Service': ['kubernetes-models/v1/Service', 'IService'],
  'monitoring.coreos.com/v1/ServiceMonitor': [
    '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
    'IServiceMonitor',
  ],
}

let cache: { checker: ts.TypeChecker; types: Map<string, ts.Type> } | null = null

function load(): { checker: ts.TypeChecker; types: Map<string, ts.Type> } {
  if (cache !== null) return cache
  const source = Object.entries(INTERFACES)
    .map(([, [mod, name]], i) => `import type { ${name} as T${i} } from '${mod}'\nexport type K${i} = T${i}`)
    .join('\n')
  // A virtual file beside this one: module resolution finds the gateway's kubernetes-models.
  const file = fileURLToPath(new URL('./__k8s_fields__.ts', import.meta.url)).replace(/\\/g, '/')
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, lang) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang)
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => name === file || fileExists(name)
  const program = ts.createProgram([file], options, host)
  const checker = program.getTypeChecker()
  const sf = program.getSourceFile(file)
  if (sf === undefined) throw new Error('k8s-fields: virtual source missing')
  const types = new Map<string, ts.Type>()
  const keys = Object.keys(INTERFACES)
  ts.forEachChild(sf, (node) => {
    if (ts.isTypeAliasDeclaration(node)) {
      const i = Number(node.name.text.slice(1))
      const key = keys[i]
      if (key !== undefined) types.set(key, checker.getTypeAtLocation(node.name))
    }
  })
  for (const k of keys) {
    const ty = types.get(k)
    if (ty === undefined || checker.getPropertiesOfType(ty).length === 0) {
      throw new Error(`k8s-fields: cannot resolve the interface of ${k}`)
    }
  }
  cache = { checker, types }
  return cache
}

/** The object members of a (possibly optional / union) type; empty when it is not an object type. */
function objectParts(checker: ts.TypeChecker, type: ts.Type): ts.Type[] {
  const t = checker.getNonNullableType(type)
  const parts = t.isUnion() ? t.types : [t]
  return parts.filter((p) => (p.flags & ts.TypeFlags.Object) !== 0 || p.isIntersection())
}

function walk(checker: ts.TypeChecker, value: unknown, type: ts.Type, path: string, out: string[]): void {
  if (value === null || typeof value !== 'object') return
  const parts = objectParts(checker, type)
  if (parts.length === 0) return
  if (Array.isArray(value)) {
    const elem = parts.map((p) =>
      checker.isArrayType(p) ? checker.getTypeArguments(p as ts.TypeReference)[0] : undefined,
    )
    const el = elem.find((e) => e !== undefined)
    if (el === undefined) return
    for (const [i, v] of value.entries()) walk(checker, v, el, `${path}[${i}]`, out)
    return
  }
  const obj = parts.filter((p) => !checker.isArrayType(p))
  if (obj.length === 0) return
  // A map (index signature) accepts any key; check its values only.
  const indexed = obj
    .map((p) => checker.getIndexInfoOfType(p, ts.IndexKind.String))
    .find((x) => x !== undefined)
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const prop = obj.map((p) => checker.getPropertyOfType(p, key)).find((s) => s !== undefined)
    const here = `${path}.${key}`
    if (prop !== undefined) {
      walk(checker, v, checker.getTypeOfSymbol(prop), here, out)
    } else if (indexed !== undefined) {
      walk(checker, v, indexed.type, here, out)
    } else {
      out.push(here)
    }
  }
}

/** The paths of every field of `obj` its Kubernetes schema does not declare (empty: none). */
export function unknownFields(obj: { apiVersion: string; kind: string }): string[] {
  const key = `${obj.apiVersion}/${obj.kind}`
  const { checker, types } = load()
  const type = types.get(key)
  if (type === undefined) throw new Error(`k8s-fields: no interface for ${key}`)
  const out: string[] = []
  walk(checker, obj, type, obj.kind, out)
  return out
}
