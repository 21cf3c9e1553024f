/**
 * Every kustomize overlay renders, and every rendered object validates against the Kubernetes
 * schemas of kubernetes-models (ServiceMonitor: @kubernetes-models/prometheus-operator).
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
import { parseConfigJson } from '@sluice/limiter-core'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { unknownFields } from './k8s-fields.js'

const K8S = fileURLToPath(new URL('../../../k8s/', import.meta.url))

type Obj = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown }
type Validator = (o: Obj) => void

const MODELS: Record<string, Validator> = {
  'apps/v1/Deployment': (o) => new Deployment(o as never).validate(),
  'apps/v1/StatefulSet': (o) => new StatefulSet(o as never).validate(),
  'autoscaling/v2/HorizontalPodAutoscaler': (o) => new HorizontalPodAutoscaler(o as never).validate(),
  'networking.k8s.io/v1/NetworkPolicy': (o) => new NetworkPolicy(o as never).validate(),
  'policy/v1/PodDisruptionBudget': (o) => new PodDisruptionBudget(o as never).validate(),
  'v1/ConfigMap': (o) => new ConfigMap(o as never).validate(),
  'v1/Secret': (o) => new Secret(o as never).validate(),
  'v1/Service': (o) => new Service(o as never).validate(),
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => new ServiceMonitor(o as never).validate(),
}

function render(overlay: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', `${K8S}${overlay}`], { encoding: 'utf8' })
  return parseAllDocuments(out).map((d) => d.toJS() as Obj)
}

function validate(o: Obj): void {
  const v = MODELS[`${o.apiVersion}/${o.kind}`]
  if (v === undefined) throw new Error(`no schema for ${o.apiVersion}/${o.kind}`)
  v(o)
}

const kubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

t.test('kubectl is available (needed to render the overlays)', async (t) => {
  t.ok(kubectl, 'kubectl on PATH')
})

for (const overlay of ['base', 'overlays/dev', 'overlays/prod']) {
  t.test(`${overlay} renders and validates`, async (t) => {
    const objs = render(overlay)
    const kinds = objs.map((o) => o.kind).sort()
    for (const k of [
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Secret',
      'Service',
      'ServiceMonitor',
    ]) {
      t.ok(kinds.includes(k), `has a ${k}`)
    }
    for (const o of objs) t.doesNotThrow(() => validate(o), `${o.kind}/${o.metadata.name} is valid`)
    for (const o of objs) t.same(unknownFields(o), [], `${o.kind}/${o.metadata.name} has no unknown field`)

    const dep = objs.find((o) => o.kind === 'Deployment') as any
    const pod = dep.spec.template.spec
    const c = pod.containers[0]
    t.equal(c.readinessProbe.httpGet.path, '/readyz')
    t.equal(c.livenessProbe.httpGet.path, '/healthz')
    t.equal(c.startupProbe.httpGet.path, '/healthz')
    t.equal(c.securityContext.readOnlyRootFilesystem, true)
    t.equal(pod.securityContext.runAsNonRoot, true)
    t.ok(pod.terminationGracePeriodSeconds > 15, 'grace period above drain bound + preStop')
    t.ok(c.resources.requests.cpu && c.resources.limits.memory, 'resources set')

    const cms = objs.filter((o) => o.kind === 'ConfigMap') as any[]
    const dflt = cms.find((m) => m.metadata.name.startsWith('sluice-default-config-'))
    t.ok(dflt, 'default config ConfigMap has a hash suffix')
    t.doesNotThrow(
      () => parseConfigJson(dflt.data['default-config.json'], 'configmap'),
      'default config is valid',
    )
    const volume = pod.volumes.find((v: any) => v.name === 'default-config')
    t.equal(volume.configMap.name, dflt.metadata.name, 'the volume uses the hashed name')
    const env = cms.find((m) => m.metadata.name.startsWith('sluice-gateway-env-'))
    t.equal(env.data.DEFAULT_CONFIG_FILE, '/etc/sluice/default-config.json')

    const np = objs.find((o) => o.kind === 'NetworkPolicy') as any
    const adminRule = np.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === 'admin'))
    t.ok(adminRule.from[0].namespaceSelector.matchLabels, 'admin port fenced by a namespace label')

    if (overlay === 'overlays/dev') {
      t.ok(
        objs.some((o) => o.kind === 'StatefulSet'),
        'dev has a Redis StatefulSet',
      )
      t.match(env.data.REDIS_URL, /^redis:\/\//)
    }
    if (overlay === 'overlays/prod') {
      t.match(env.data.REDIS_CLUSTER_NODES, /:\d+,/)
      t.notOk(
        objs.some((o) => o.kind === 'StatefulSet'),
        'prod uses an external Redis',
      )
    }
  })
}

t.test('a mistyped field fails validation (negative)', async (t) => {
  const dep = render('base').find((o) => o.kind === 'Deployment') as any
  const bad = structuredClone(dep)
  bad.spec.replicas = 'three'
  t.throws(() => validate(bad), /replicas/)
  const bad2 = structuredClone(dep)
  bad2.spec.template.spec.containers[0].ports[0].containerPort = '3000'
  t.throws(() => validate(bad2), /containerPort/)
  const bad3 = structuredClone(dep)
  delete bad3.spec.selector
  t.throws(() => validate(bad3), /selector/)
  const sm = render('base').find((o) => o.kind === 'ServiceMonitor') as any
  const badSm = structuredClone(sm)
  badSm.spec.endpoints = 'http'
  t.throws(() => validate(badSm), /endpoints/)
})

t.test('a misspelled field is rejected (negative)', async (t) => {
  const objs = render('base')
  const dep = structuredClone(objs.find((o) => o.kind === 'Deployment')) as any
  dep.spec.replcas = 3
  dep.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: '/readyz', port: 'http' } }
  dep.spec.template.spec.containers[0].resources.limit = { memory: '1Gi' }
  t.ok(unknownFields(dep).includes('Deployment.spec.replcas'), 'spec.replcas')
  t.ok(
    unknownFields(dep).includes('Deployment.spec.template.spec.containers[0].readinesProbe'),
    'readinesProbe',
  )
  t.ok(
    unknownFields(dep).includes('Deployment.spec.template.spec.containers[0].resources.limit'),
    'resources.limit',
  )
  t.equal(unknownFields(dep).length, 3, 'nothing else')
  const sm = structuredClone(objs.find((o) => o.kind === 'ServiceMonitor')) as any
  sm.spec.endpoints[0].intervall = '15s'
  t.same(unknownFields(sm), ['ServiceMonitor.spec.endpoints[0].intervall'])
  const cm = structuredClone(objs.find((o) => o.kind === 'ConfigMap')) as any
  cm.data.ANY_KEY = 'maps accept any key'
  t.same(unknownFields(cm), [], 'labels/annotations/data are maps')
  cm.metdata = {}
  t.same(unknownFields(cm), ['ConfigMap.metdata'])
})
